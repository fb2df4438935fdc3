"""The fleet simulator behind `raqib bench fleet`."""
