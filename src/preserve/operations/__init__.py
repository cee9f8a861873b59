"""Life after ingest, on stored AIPs: `audit` (scheduled fixity: inventory, rolling re-read, bag
checks, repair from a replica that verifies now), `restore` (a complete, verified bag back, with
replica fallback), `embargo` (publishing held access copies once their date has come), `alerts`
(webhook and SMTP, recorded in the catalog first and swept until delivered). Every action is an
event with its agent."""
