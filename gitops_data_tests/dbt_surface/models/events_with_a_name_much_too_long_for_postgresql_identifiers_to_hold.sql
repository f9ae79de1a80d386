{{ config(alias='events_trimmed', post_hook="delete from {{ this }} where kind = 'buy'") }}
select id, kind, amount from {{ ref('events') }}
