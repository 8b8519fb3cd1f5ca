"""Does the running service answer the way this release promises, as its clients will call it?"""
