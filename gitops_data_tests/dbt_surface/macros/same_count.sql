{# fail_calc set inside the test: the query always returns one row, the difference #}
{% test same_count(model, compare_model) %}
  {{ config(fail_calc='sum(coalesce(diff, 0))') }}
  select abs((select count(*) from {{ model }}) - (select count(*) from {{ compare_model }})) as diff
{% endtest %}
