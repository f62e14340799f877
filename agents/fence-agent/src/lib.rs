//! The fence-agent API of ClusterLabs' fencing.py, implemented once for any agent: options, actions, timing, metadata, logging, exit codes.
