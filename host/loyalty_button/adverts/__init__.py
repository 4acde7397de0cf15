"""The store's adverts (docs/adverts.md): pictures converted per board
(`image`), the folder and its playlist (`library`), and each panel's
retained manifest (`publisher`). The POS HTTP listener serves the files."""
