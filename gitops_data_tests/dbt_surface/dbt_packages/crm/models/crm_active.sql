select * from {{ ref('crm_accounts') }} where id >= {{ var('crm_min') }} and {{ crm_flag() }}
