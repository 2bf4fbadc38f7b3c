"""Model names → deployments: groups, patterns, aliases; and the health that routing decisions use."""
