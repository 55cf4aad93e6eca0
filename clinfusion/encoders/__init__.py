"""clinfusion.encoders"""
