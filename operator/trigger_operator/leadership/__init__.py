"""Leadership: the Lease elector, keyed to the Deployment revision, and revision discovery."""
