"""Run the whole platform on one machine: five services and the gateway as processes."""
