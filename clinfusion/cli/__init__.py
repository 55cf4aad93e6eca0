"""clinfusion.cli"""
