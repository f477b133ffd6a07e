"""Stage-independent building blocks: errors, seeding, registry, taxonomy, manifest, config and image I/O."""
