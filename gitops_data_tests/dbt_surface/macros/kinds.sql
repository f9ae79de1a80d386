{# the values of a column, read from the warehouse while rendering (like dbt_utils.get_column_values) #}
{% macro kinds(rel) %}
  {% set rows = run_query('select distinct kind from ' ~ rel ~ ' order by kind') %}
  {% if execute %}{{ return(rows.columns[0].values()) }}{% else %}{{ return([]) }}{% endif %}
{% endmacro %}
