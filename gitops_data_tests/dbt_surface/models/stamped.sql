select id, '{{ invocation_id }}' as loaded_by, cast('{{ run_started_at }}' as timestamp) as loaded_at
from {{ ref('events') }}
