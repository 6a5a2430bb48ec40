"""What every phase shares: params, user-facing errors, the stage runner, devices, atomic file writes, charts."""
