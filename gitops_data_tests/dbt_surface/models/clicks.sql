{{ config(materialized='ephemeral') }}
select id, amount from {{ ref('events') }} where kind = 'click'
