"""clinfusion.fusion"""
