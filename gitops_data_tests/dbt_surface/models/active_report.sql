select count(*) as accounts from {{ ref('crm', 'crm_active') }}
