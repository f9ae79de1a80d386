{%- set methods = var('payment_methods') -%}
select
    order_id,
    {% for method in methods -%}
    sum(case when payment_method = '{{ method }}' then amount else 0 end) as {{ method }}_amount,
    {% endfor -%}
    sum(amount) as amount,
    count(*) as payment_count
from {{ ref('stg_payments') }}
group by order_id
