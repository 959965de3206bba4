"""Report requests (seed 001): building their CSV artefacts in the artifact store."""
