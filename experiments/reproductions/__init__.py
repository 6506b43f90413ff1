"""One module per paper (or figure group); each registers its reproductions with `@reproduction`."""
