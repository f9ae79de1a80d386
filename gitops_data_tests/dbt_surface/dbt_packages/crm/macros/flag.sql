{% macro crm_flag() %}true{% endmacro %}
