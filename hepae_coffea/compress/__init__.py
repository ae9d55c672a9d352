"""File compression: jets replaced by latents or coded values and back (`files`), the codec choice (`choose`) and faithful ROOT tree copies (`root_copy`)."""
