"""Dataset declarations, one module a dataset (or a family of them): each calls
:func:`medtorch.data.registry.register_dataset`. The registry finds every module here on
first use, so a new dataset is one new file (plus its checksum list under
``data/checksums/`` when the package lists its files)."""
