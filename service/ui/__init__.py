"""The operator page (docs/operator.md): static HTML, JS and CSS served at ``/ui``."""
