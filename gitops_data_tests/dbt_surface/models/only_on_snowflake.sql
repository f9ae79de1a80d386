{{ config(enabled=target.type == 'snowflake') }}
select {% if execute %}{{ exceptions.raise_compiler_error('this model runs on Snowflake only') }}{% endif %} 1 as x
