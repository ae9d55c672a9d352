"""File compression: jets replaced by latents or coded values and back.

`files` holds the entry points (`compress`, `decompress`) and their steps; `chunk` the
processor's per-chunk writer. `source` finds and reads an input's jets (`energy`: jets
stored with E instead of mass), `layout` lays out the compressed tree, `blocks` encodes
and decodes one block of it, `choose` picks and runs the array codecs, `model_store`
embeds the model or refers to it, `record` writes and reads the compression record, and
`root_copy` makes faithful ROOT tree copies.
"""
