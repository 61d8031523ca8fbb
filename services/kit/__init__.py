"""What every Grassroots service shares: bootstrap, config, errors, principal, clients."""
