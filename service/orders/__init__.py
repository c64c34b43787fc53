"""Orders: an item bought in some quantity, at the item's price of the moment."""
