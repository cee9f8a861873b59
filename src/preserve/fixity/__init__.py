"""fixity"""
