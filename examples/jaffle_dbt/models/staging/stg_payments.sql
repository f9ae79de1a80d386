{{ config(materialized='view') }}

select
    payment_id,
    order_id,
    payment_method,
    {{ cents_to_dollars('amount_cents') }} as amount
from {{ source('jaffle', 'raw_payments') }}
