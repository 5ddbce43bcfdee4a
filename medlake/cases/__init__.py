"""Cases and their annotation status, from the de-identified objects and annotations actually found."""
