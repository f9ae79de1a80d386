-- every order's amount is the sum of its payments (belongs to `orders`, the first model it refs)
select o.order_id, o.amount, p.paid
from {{ ref('orders') }} as o
join (
    select order_id, sum(amount) as paid from {{ ref('stg_payments') }} group by order_id
) as p on p.order_id = o.order_id
where o.amount <> p.paid
