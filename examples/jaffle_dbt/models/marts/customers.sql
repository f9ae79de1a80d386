with order_totals as (
    select
        customer_id,
        count(*) as order_count,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        sum(amount) as lifetime_value
    from {{ ref('orders') }}
    where status <> 'returned'
    group by customer_id
)

select
    c.customer_id,
    c.customer_name,
    c.email,
    k.name as country,
    k.region,
    coalesce(t.order_count, 0) as order_count,
    t.first_order_at,
    t.last_order_at,
    coalesce(t.lifetime_value, 0) as lifetime_value,
    coalesce(t.lifetime_value, 0) >= {{ var('vip_threshold') }} as is_vip
from {{ ref('stg_customers') }} as c
left join {{ ref('countries') }} as k on k.code = c.country_code
left join order_totals as t on t.customer_id = c.customer_id
