"""clinfusion.objectives"""
