{{ config(materialized='table', tags=['finance']) }}

with orders as (
    select * from {{ ref('stg_orders') }}
),

payments as (
    select * from {{ ref('int_order_payments') }}
)

select
    {{ mini_utils.generate_surrogate_key(['o.order_id', 'o.customer_id']) }} as order_key,
    {{ mini_utils.star(ref('stg_orders'), relation_alias='o') }},
    {% for method in var('payment_methods') -%}
    coalesce(p.{{ method }}_amount, 0) as {{ method }}_amount,
    {% endfor -%}
    coalesce(p.amount, 0) as amount,
    coalesce(p.payment_count, 0) as payment_count
from orders as o
left join payments as p on o.order_id = p.order_id
