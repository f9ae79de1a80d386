"""The one owner of a commit's lifecycle: `Deployment` (repo, warehouse, settings resolved once),
`lifecycle` (typed triggers and plan states; claim -> execute -> conclude -> publish -> record)
and the operations the CLI and Dagster call."""
