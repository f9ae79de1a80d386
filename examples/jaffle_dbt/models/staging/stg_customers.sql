{# customers as the CRM exports them, one row each #}
select
    customer_id,
    first_name || ' ' || last_name as customer_name,
    nullif(lower(email), '') as email,
    country_code,
    updated_at
from {{ ref('raw_customers') }}
