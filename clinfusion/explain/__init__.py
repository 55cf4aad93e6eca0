"""clinfusion.explain"""
