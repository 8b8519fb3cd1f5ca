"""Can this release's schema change ship: included, applied as recorded, safe on production's
tables, and undoable?"""
