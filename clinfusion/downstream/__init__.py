"""clinfusion.downstream"""
