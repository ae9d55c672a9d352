"""Reading jets and writing files: ROOT opening, format detection, jet readers, NanoEvents schemas, atomic writes, safe results files and input guards."""
