"""Evidence: segmented encrypted recording, the signed hash-chain ledger, upload and audit."""
