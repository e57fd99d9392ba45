"""The persistent index: what is in each origin, its tags, its inode and where the layout shows it."""
