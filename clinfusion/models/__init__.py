"""clinfusion.models"""
