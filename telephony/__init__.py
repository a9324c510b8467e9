"""The Asterisk side: AMI connection, framing, typed events, call tracker, replay peer."""
