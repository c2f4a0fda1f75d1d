"""provnet rollout: a site from the source of truth to an accepted, working video-conference site (issue 21)."""
