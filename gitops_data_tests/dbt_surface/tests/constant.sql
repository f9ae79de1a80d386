{# refs no model: its result depends on its query alone #}
select 1 as x where {{ 1 + 1 }} = 3
