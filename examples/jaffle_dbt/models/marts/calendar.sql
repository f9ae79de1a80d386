{{ config(materialized='table') }}

{# one row per day of the order history: the package's date_spine evaluates its interval count with a statement #}
{{ mini_utils.date_spine("day", "cast('2024-01-01' as date)", "cast('2024-02-05' as date)") }}
