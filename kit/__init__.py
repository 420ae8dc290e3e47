"""The daemon kit: what every daemon of tke-vpc-cni needs and no component
owns — logging (``kit.logs``), settings from one declaration (``kit.settings``),
and the health/metrics server and list+watch loop beside them. The kit knows
no component (import-linter: "The daemon kit knows no component"); components
use it and the core."""
