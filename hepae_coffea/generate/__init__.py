"""Sample generation with Pythia 8 and FastJet (`pythia`)."""
