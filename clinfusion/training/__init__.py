"""clinfusion.training"""
