"""10DLC registrars: the drivers a merchant's brand, campaigns and number assignments are registered through."""
