select
    order_id,
    customer_id,
    cast(ordered_at as timestamp) as ordered_at,
    status
from {{ source('jaffle', 'raw_orders') }}
