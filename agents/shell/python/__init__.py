"""The Python subset the machine's ``python3`` runs in the modelled world."""
