select
{% for k in kinds(ref('events')) %}
  sum(case when kind = '{{ k }}' then amount else 0 end) as {{ k }}_amount,
{% endfor %}
  count(*) as n
from {{ ref('events') }}
